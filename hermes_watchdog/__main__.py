from hermes_watchdog.cli import main

main()
