"""The live server: the app under test on a loopback TCP port, for browsers and subprocesses."""
