"""The cases of benchmarks/ftgo.py that need more than a function: the distributed run."""
