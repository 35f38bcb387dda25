"""The FederatedHPA controller: the Kubernetes HPA algorithm over a federated Deployment.

`replicas` (the replica calculator) and `behavior` (stabilisation and scaling policies)
are pure: they take measurements, history and the time as arguments, so their tests
are Kubernetes' own cases transcribed (tests/controllers/autoscaling/).
"""
