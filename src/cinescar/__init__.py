"""cinescar: scar screening of HCM patients from non-contrast cine MRI."""

__version__ = "0.1.0"
