from afilo_db.cli import main

main()
