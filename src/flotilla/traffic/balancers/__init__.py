"""Load-balancing strategies, one small class each behind `base.Balancer`."""
