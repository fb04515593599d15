"""System checks and the settings they validate (conf.py, aws.py)."""
