"""Sparkplug B 3.0 host application at the edge: the payload's protobuf module (generated from
sparkplug_b.proto), the pure host state machine (host.py) and its mapping onto our readings."""
