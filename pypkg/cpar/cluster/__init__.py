"""Starting and stopping clusters: a controller and its engines."""

from .cluster import Cluster, ClusterError, list_clusters, running_cluster_info

__all__ = ["Cluster", "ClusterError", "list_clusters", "running_cluster_info"]
