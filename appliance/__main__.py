from appliance.cli.main import entry

entry()
