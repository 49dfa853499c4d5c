"""Sample apps that run inside (or beside) the mesh: an httpbin clone and the seed talk's
"simple system" (user-service, location-service). Started by the runner from Workload YAML
(`python -m meshward.samples.<app>`), by end-to-end tests, and by the benchmark.
"""
