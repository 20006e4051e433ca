"""Testing kit for plugin authors: an emulator fixture and helpers to run agents."""
