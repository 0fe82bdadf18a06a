"""The `appliance` command: verbs that parse arguments, call the stages and print.

`main` holds the parser and the build/run/bench/compare verbs, `where` the analysis
verbs, `doctor` the machine checks, `output` the one --json/table printer.

May import everything below it; nothing imports the cli.
"""
