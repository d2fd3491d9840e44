"""The cohort: the synthetic phantom and its cohort, real data read and checked, pairing and splits,
and clinical measurements on radiographs (the cardiothoracic ratio)."""
