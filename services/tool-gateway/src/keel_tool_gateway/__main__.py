from keel_tool_gateway.app import main

main()
