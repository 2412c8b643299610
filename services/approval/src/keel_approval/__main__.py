from keel_approval.app import main

main()
