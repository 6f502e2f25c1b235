"""Parameters of the simulated instrument (the ``simulation:`` section of a beamline configuration file).

Every number has a realistic default for the SSRL 6-2c-like TXM at 9 keV, so an empty section gives a
working instrument; unknown keys are rejected, so a typo fails loudly instead of being ignored.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "SampleParams",
    "DiffuserParams",
    "OpticsParams",
    "StageParams",
    "CameraParams",
    "VortexParams",
    "TimingParams",
    "SimulationParams",
]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SampleParams(_Strict):
    """The sample: the built-in battery phantom, or element maps from an image or HDF5 file."""

    phantom: str = Field("battery", description="'battery', a scikit-image sample name (e.g. 'camera'), "
                                                "or a path to an image (.png/.tif/.jpg) or HDF5 file")
    seed: int = Field(0, description="phantom layout seed (battery)")
    element: str = Field("Ni", description="element carried by a grayscale image sample")
    maps_dataset: str = Field("maps", description="HDF5 dataset (E, H, W) with attribute 'elements'")
    txm_dataset: str | None = Field("txm", description="HDF5 dataset (H, W): optical density (optional)")


class DiffuserParams(_Strict):
    """The two sandpaper screens (recon's TwoDiffuserModel) and how motor travel maps onto them."""

    grit_px: tuple[float, float] = Field((1.5, 4.0), description="grain (px) of diffuser 1 and 2")
    contrast: tuple[float, float] = (0.5, 0.5)
    static_fraction: float = Field(0.4, ge=0.0, lt=1.0, description="pattern share that never moves")
    um_per_px: float = Field(1.0, gt=0, description="diffuser travel (um) that moves its speckle by one px")
    seed: int = 1


class OpticsParams(_Strict):
    """Condenser, pinhole and zone plate: beam envelope, flux through the pinhole, camera blur and shift."""

    envelope_sigma: float = Field(1.2, gt=0, description="beam envelope width, in field half-sizes, "
                                                          "at the reference pinhole diameter")
    envelope_center: tuple[float, float] = (0.1, -0.15)
    blur_px: float = Field(0.7, ge=0, description="optics blur of the illumination (px)")
    condenser_shift_per_mm: float = Field(20.0, description="envelope shift (half-sizes) per mm of condenser x/y")
    condenser_shift_per_mrad: float = Field(0.5, description="envelope shift (half-sizes) per mrad pitch/yaw")
    condenser_focal_mm: float = Field(50.0, gt=0, description="condenser-to-pinhole distance: tilt moves the focus")
    pinhole_diameter_um: float = Field(50.0, gt=0)
    reference_pinhole_um: float = Field(50.0, gt=0)
    focus_size_um: float = Field(20.0, gt=0, description="condenser focus (1 sigma) at the pinhole")
    zone_plate_px_per_mm: float = Field(3000.0, description="camera image shift (px) per mm of zone-plate x/y")
    zone_plate_focus_mm: float = Field(0.0, description="zone-plate z of best focus")
    defocus_px_per_mm: float = Field(200.0, ge=0, description="camera blur sigma (px) per mm of defocus")


class StageParams(_Strict):
    """Sample stage: pixel size in the sample plane and how well the stage returns to a position."""

    pixel_size_um: float = Field(0.03, gt=0, description="sample-plane pixel size (um)")
    repeatability_px: float = Field(0.7, ge=0, description="1-sigma placement error per in-plane axis after a stage x or y move (px)")
    seed: int = 2


class CameraParams(_Strict):
    """TXM camera: photons, dark current, offset, read noise (uint16 frames)."""

    photons_per_s: float = Field(2.0e4, gt=0, description="mean counts per pixel per second, open beam")
    dark_counts_per_s: float = Field(20.0, ge=0)
    offset: float = Field(100.0, ge=0, description="constant bias added by the readout")
    read_noise: float = Field(3.0, ge=0, description="readout noise, counts rms")
    seed: int = 3


class VortexParams(_Strict):
    """Vortex + XIA Mercury: energy axis, resolution, count rates at full flux, dead time."""

    channels: int = Field(2048, ge=256, le=16384)
    zero_keV: float = 0.0
    gain_keV: float = Field(0.01, gt=0)
    noise_keV: float = Field(0.10, gt=0, description="electronic noise FWHM")
    fano: float = Field(0.114, gt=0)
    xrf_cps: float = Field(2.0e5, gt=0, description="K counts/s of an element of unit mean map under a unit "
                                                    "mean pattern (scaled by relative fluorescence sensitivity)")
    elastic_cps: float = Field(5.0e3, ge=0)
    compton_cps: float = Field(8.0e3, ge=0)
    background_cps: float = Field(1.0e4, ge=0, description="continuum counts/s at full flux")
    dead_time_us: float = Field(1.0, ge=0, description="paralyzable dead time per event")
    seed: int = 4


class TimingParams(_Strict):
    """Wall-clock behaviour: how long moves and acquisitions take (0 = instantaneous, for benchmarks)."""

    move_time_s: float = Field(0.02, ge=0, description="duration of any motor move")
    acquire_time_scale: float = Field(1.0, ge=0, description="wall time per second of exposure or preset time")


class SimulationParams(_Strict):
    """The simulated instrument as a whole."""

    image_size: int = Field(64, ge=24, le=1024, description="camera frame and sample field (px, square)")
    energy_keV: float = Field(9.0, gt=1.0, le=40.0)
    sample: SampleParams = SampleParams()
    diffusers: DiffuserParams = DiffuserParams()
    optics: OpticsParams = OpticsParams()
    stage: StageParams = StageParams()
    camera: CameraParams = CameraParams()
    vortex: VortexParams = VortexParams()
    timing: TimingParams = TimingParams()
