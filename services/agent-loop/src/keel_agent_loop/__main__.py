from keel_agent_loop.app import main

main()
