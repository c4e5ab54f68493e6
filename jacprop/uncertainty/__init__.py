"""The metrology behind ``jacprop propagate``: coverage factors and degrees of freedom (JCGM 100
annex G), input distributions and the adaptive Monte Carlo method with its validation of the GUM
uncertainty framework (JCGM 101 sections 6, 7.9 and 8)."""
