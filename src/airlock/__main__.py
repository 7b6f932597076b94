from airlock.cli.main import run

raise SystemExit(run())
