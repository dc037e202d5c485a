from worker.service.cli import main

main()
