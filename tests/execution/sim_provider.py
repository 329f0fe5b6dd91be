"""The node provider of the simulated cluster (`cluster_sim.SimCluster`), loaded by its autoscaler as
an `external` provider: Ray's fake multi-node provider, except that every worker node gets its own
temp folder (session files, sockets, logs, runtime-env downloads) under `provider.node_temp_root`,
as separate machines would. With one shared folder, a GPU node's runtime-env agent unpacks the job's
working_dir over the one the head's driver runs in (the driver then fails on `os.getcwd()`).
(`type: external` also skips the wheel's missing `fake_multi_node/example.yaml` defaults.)
"""
from __future__ import annotations

import os

import ray._private.parameter as parameter
from ray.autoscaler._private.fake_multi_node.node_provider import FakeMultiNodeProvider


class NodeLocalFakeProvider(FakeMultiNodeProvider):
    def _create_node_with_resources_and_labels(self, node_config, tags, count, resources, labels):
        root, make = self.provider_config["node_temp_root"], parameter.RayParams

        def params(*args, **kwargs):  # called inside, after the node's number was drawn
            return make(*args, **{**kwargs, "temp_dir": os.path.join(root, f"n{self._next_node_id}")})

        parameter.RayParams = params
        try:
            return super()._create_node_with_resources_and_labels(node_config, tags, count, resources, labels)
        finally:
            parameter.RayParams = make
