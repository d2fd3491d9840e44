"""The GVR overlay's colours, shared by the overlay image and the pages that explain it."""

#: Density removed on the way from "diseased" to "healthy" (the diseased reconstruction is brighter).
ORANGE = (255, 140, 0)
#: Density added on the way to "healthy".
PURPLE = (160, 32, 240)
