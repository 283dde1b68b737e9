from mcp_server.runner import main

raise SystemExit(main())
