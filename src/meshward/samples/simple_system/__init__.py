"""The seed talk's "A Simple System": user-service reads users from a Redis database and asks
location-service where they are; location-service reports who called it (the XFCC header its
sidecar set). `python -m meshward.samples.simple_system user-service|location-service`.
The YAML that deploys it is examples/simple-system/.
"""
