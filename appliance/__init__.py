"""appliance: build minimal Linux boot appliances and measure where boot time goes."""

__version__ = "0.1.0"
