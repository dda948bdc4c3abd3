"""Reads the world and decides nothing: processes, CPU, Hermes' files, stacks, logs."""
