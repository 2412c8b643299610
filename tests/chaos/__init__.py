"""The chaos suite: sessions in flight while every service and the broker are SIGKILLed."""
