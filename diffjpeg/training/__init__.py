"""What training code adds on top of the codec: ``augment``
(:class:`RandomJPEG`, random JPEG compression as a data augmentation) and
``losses`` (:class:`RateDistortionLoss`)."""
