from keel_policy.app import main

main()
