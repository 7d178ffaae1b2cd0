"""Card workflow (households, appointments, capture, approval, cards): arrives with its issue."""
