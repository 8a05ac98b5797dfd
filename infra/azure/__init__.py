"""Azure: per region a resource group, VNet, NSG, scale set and Standard Load Balancer; VNets peered to a hub."""
