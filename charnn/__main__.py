from charnn.cli.app import run

run()
