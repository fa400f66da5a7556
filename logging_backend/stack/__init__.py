"""The stack room, top floor: launcher, Triton command line, CLI. Nothing imports it."""
