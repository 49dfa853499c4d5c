"""netns/: the pieces of the runner's netns network mode that touch the kernel.

Pods as network namespaces on a bridge, an outside network behind a router namespace, the
capture rules (modelled on Istio's istio-iptables), and entering a namespace from Python.
Used by the runner (build and tear down), the agent (start Envoy inside a pod), the CLI
(`exec`, `down`) and the verifier (probes from inside a pod). Layered beside state/ and
process/: it knows model addresses, never config or Envoy.
"""
