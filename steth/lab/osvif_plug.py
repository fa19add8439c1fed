"""Plug a lab VM's port with os-vif itself, as Nova's compute manager does before libvirt starts the guest.

Run by the Neutron venv's Python (os-vif comes with Neutron) inside the compute node (`nsenter -n -m`), with
one JSON argument: {"port_id", "mac", "network_id", "mtu", "hybrid", "datapath_type", "instance_uuid",
"instance_name"}. It imports nothing of steth: the project's venv has no os-vif.

The VIF object is built the way nova/network/os_vif_util.py _nova_to_osvif_vif_ovs builds it from the port's
binding: VIFBridge (plugin ovs, bridge_name qbr<id>) when vif_details ovs_hybrid_plug is true, else
VIFOpenVSwitch on br-int; vif_name tap<id> (14 characters); VIFPortProfileOpenVSwitch with the port id as
interface_id and the vif_details datapath_type. os-vif's vif_plug_ovs then makes qbr, the qvb/qvo veth and the
qvo port on br-int with its external_ids (hybrid), or only checks br-int (native: libvirt adds the tap).
Privileged steps go through oslo.privsep with root_helper `env` (the lab runs as root), as Nova's does
through its rootwrap.
"""

from __future__ import annotations

import json
import sys


def main() -> None:
    spec = json.loads(sys.argv[1])
    import os_vif
    from os_vif.objects import instance_info, network
    from os_vif.objects import vif as vif_obj
    from oslo_config import cfg
    from oslo_privsep import priv_context

    cfg.CONF([], project="steth-lab-os-vif")
    priv_context.init(root_helper=["env"])
    os_vif.initialize()
    net = network.Network(id=spec["network_id"], bridge="br-int", mtu=spec["mtu"])
    profile = vif_obj.VIFPortProfileOpenVSwitch(interface_id=spec["port_id"], datapath_type=spec["datapath_type"])
    common = {
        "id": spec["port_id"],
        "address": spec["mac"],
        "network": net,
        "plugin": "ovs",
        "vif_name": ("tap" + spec["port_id"])[:14],
        "has_traffic_filtering": True,
        "preserve_on_delete": False,
        "active": False,
        "port_profile": profile,
    }
    if spec["hybrid"]:
        vif = vif_obj.VIFBridge(bridge_name=("qbr" + spec["port_id"])[:14], **common)
    else:
        vif = vif_obj.VIFOpenVSwitch(bridge_name="br-int", **common)
    os_vif.plug(vif, instance_info.InstanceInfo(uuid=spec["instance_uuid"], name=spec["instance_name"]))
    print(json.dumps({"plugged": type(vif).__name__}))


if __name__ == "__main__":
    main()
