"""Starting and stopping clusters: a controller and its engines."""

from .cluster import Cluster, ClusterError, list_clusters, running_cluster_info
from .manager import ClusterManager

__all__ = ["Cluster", "ClusterError", "ClusterManager", "list_clusters",
           "running_cluster_info"]
