"""Local emulators of the vendor APIs, speaking their documented wire formats."""
