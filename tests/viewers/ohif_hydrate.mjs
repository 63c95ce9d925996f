// Read a DICOM SR the way OHIF rehydrates it: dcmjs parses and naturalizes the file, and
// @cornerstonejs/adapters' MeasurementReport.generateToolState turns its measurement groups into
// Cornerstone3D tool annotations. Image geometry comes from the source CT files through a Cornerstone
// metadata provider (imagePlaneModule as the dicom-image-loader fills it), as in the viewer.
//
// usage: node ohif_hydrate.mjs SR_FILE CT_FILE...   -> JSON on stdout:
//   {"tools": {"Bidirectional": [{trackingUid, sopInstanceUid, points, length, width, unit, widthUnit}]},
//    "rehydratable": [tracking identifiers the adapters map to a tool], "warnings": [...]}
import { readFileSync } from 'node:fs';

// Silence and collect console output before the libraries bind their loggers: generateToolState prints every
// measurement it builds and reports each group it cannot read with console.warn.
const warnings = [];
console.log = () => {};
console.info = () => {};
console.debug = () => {};
console.warn = (...args) => {
  const text = args
    .map((a) => (a instanceof Error ? `${a.name}: ${a.message}` : typeof a === 'string' ? a : ''))
    .filter(Boolean)
    .join(' ');
  warnings.push(text);
};

const { default: dcmjs } = await import('dcmjs');
const { metaData } = await import('@cornerstonejs/core');
const { adaptersSR } = await import('@cornerstonejs/adapters');
const { MeasurementReport } = adaptersSR.Cornerstone3D;
const { DicomMessage, DicomMetaDictionary } = dcmjs.data;

function readNaturalized(path) {
  const buffer = readFileSync(path);
  const arrayBuffer = buffer.buffer.slice(buffer.byteOffset, buffer.byteOffset + buffer.byteLength);
  const dicomData = DicomMessage.readFile(arrayBuffer);
  return DicomMetaDictionary.naturalizeDataset(dicomData.dict);
}

const [srPath, ...ctPaths] = process.argv.slice(2);
if (!srPath || ctPaths.length === 0) {
  console.error('usage: node ohif_hydrate.mjs SR_FILE CT_FILE...');
  process.exit(2);
}

const planeByImageId = new Map();
const instanceByImageId = new Map();
const sopInstanceUIDToImageIdMap = {};
for (const path of ctPaths) {
  const ds = readNaturalized(path);
  const imageId = `hpd:${ds.SOPInstanceUID}`;
  const iop = ds.ImageOrientationPatient.map(Number);
  const spacing = ds.PixelSpacing.map(Number);
  planeByImageId.set(imageId, {
    frameOfReferenceUID: ds.FrameOfReferenceUID,
    rows: ds.Rows,
    columns: ds.Columns,
    imagePositionPatient: ds.ImagePositionPatient.map(Number),
    rowCosines: iop.slice(0, 3),
    columnCosines: iop.slice(3, 6),
    // as @cornerstonejs/dicom-image-loader's imagePlaneModule: PixelSpacing = [row spacing, column spacing]
    rowPixelSpacing: spacing[0],
    columnPixelSpacing: spacing[1],
    pixelSpacing: spacing,
  });
  instanceByImageId.set(imageId, ds);
  sopInstanceUIDToImageIdMap[`${ds.SOPInstanceUID}:1`] = imageId;
  sopInstanceUIDToImageIdMap[ds.SOPInstanceUID] = imageId;
}
metaData.addProvider((type, imageId) => {
  if (type === 'imagePlaneModule') return planeByImageId.get(imageId);
  if (type === 'instance') return instanceByImageId.get(imageId);
  return undefined;
}, 10000);


const sr = readNaturalized(srPath);
const toolState = MeasurementReport.generateToolState(sr, sopInstanceUIDToImageIdMap, metaData);

const tools = {};
for (const [toolType, entries] of Object.entries(toolState)) {
  tools[toolType] = entries.map((state) => {
    const data = state.annotation.data;
    const stats = Object.values(data.cachedStats || {})[0] || {};
    return {
      trackingUid: state.TrackingUniqueIdentifier ?? null,
      sopInstanceUid: state.sopInstanceUid ?? null,
      referencedImageId: state.annotation.metadata.referencedImageId ?? null,
      points: data.handles.points,
      length: stats.length ?? null,
      width: stats.width ?? null,
      unit: stats.unit ?? null,
      widthUnit: stats.widthUnit ?? null,
    };
  });
}

// OHIF's isRehydratable: does any group's tracking identifier map to an adapter?
const rehydratable = [];
const report = [].concat(sr.ContentSequence).find((item) => item.ConceptNameCodeSequence.CodeValue === '126010');
for (const group of [].concat(report?.ContentSequence ?? [])) {
  const tracking = [].concat(group.ContentSequence ?? []).find((item) => item.ConceptNameCodeSequence.CodeValue === '112039');
  const adapter = tracking && MeasurementReport.getAdapterForTrackingIdentifier(tracking.TextValue);
  if (adapter) rehydratable.push({ trackingIdentifier: tracking.TextValue, toolType: adapter.toolType });
}

process.stdout.write(JSON.stringify({ tools, rehydratable, warnings }));
