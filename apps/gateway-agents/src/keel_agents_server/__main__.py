from keel_agents_server.app import main

main()
