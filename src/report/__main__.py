from src.report import main

raise SystemExit(main())
