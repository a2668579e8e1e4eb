from hostdev.cli.main import main

main()
