"""The SRL kopf operator: turns RLExperiment objects into Redis, PVC, Services and worker pods."""
