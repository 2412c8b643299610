from keel_cli.main import main

main()
