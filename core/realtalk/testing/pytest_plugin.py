"""pytest plugin of realtalk (entry point pytest11): fixtures for plugin authors."""
