"""nnofi's emulation lab: topologies of nodes (local processes, network
namespaces, Docker containers, ssh hosts), Python run on them through
execnet, and a pytest plugin (--lab TOPOLOGY) that gives tests node
handles. See lab/README.md."""
from .faults import FaultUnavailable
from .lab import Lab, transport_url
from .node import LabError, LabTimeout, Node, RemoteError, Task
from .shipping import ShippingError
from .topology import Topology, TopologyError

__all__ = ["FaultUnavailable", "Lab", "LabError", "LabTimeout", "Node", "RemoteError", "ShippingError", "Task",
           "Topology", "TopologyError", "transport_url"]
