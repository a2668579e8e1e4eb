from hostdev.cli.app import main

main()
