"""The WSL model: the autoMemoryReclaim engine and its daemon, and the .wslconfig checker."""
