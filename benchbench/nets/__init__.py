"""Shared networks: convolutional VAE encoder/decoder and (later) the ADM-style UNet, one module each."""
