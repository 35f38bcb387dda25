"""The Flotilla node agent: a kubelet stand-in that runs pods as local processes.

No kubelet can run on a machine without a container runtime; this process registers
Nodes in a kube-apiserver and runs the pods the real kube-scheduler binds to them with
the local runtime's container, probe and restart code, reporting phase, readiness and a
loopback pod IP (as virtual-kubelet providers do). See docs/kubernetes.md.
"""
