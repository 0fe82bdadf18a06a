"""The `appliance` command: verbs that parse arguments, call the stages and print.

`main` holds the parser and the build/run/bench/compare verbs, `analysis_verbs` the
analysis verbs, `tune`, `series`, `history`, `gate`, `bisect` and `fleet` one verb (or
family) each, `doctor` the machine checks, `options` what the verbs share, `output` the
one --json/table printer.

May import everything below it; nothing imports the cli.
"""
