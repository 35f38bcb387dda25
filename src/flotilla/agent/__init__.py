"""The member-cluster agent (pull mode).

One agent runs per member cluster. It registers the Cluster, renews the cluster's
heartbeat Lease, follows the Works addressed to its cluster and hands their manifests to
a runtime driver (`flotilla.runtimes`), and reports back what runs: workload status,
Service endpoints and capacity. The control plane never connects to a member cluster;
everything flows over the agent's outbound connection, so clusters behind NAT or
firewalls can join.
"""
