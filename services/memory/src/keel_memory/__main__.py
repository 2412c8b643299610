from keel_memory.app import main

main()
