from keel_llm_gateway.app import main

main()
