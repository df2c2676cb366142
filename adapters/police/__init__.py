"""Police station (派出所) exports."""
