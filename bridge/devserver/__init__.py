"""Private development servers (a throwaway Synapse) for the demo, tests and benchmarks."""
