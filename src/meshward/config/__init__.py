"""config/: sources → typed resources. The only layer that parses YAML."""
